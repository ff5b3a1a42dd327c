"""One module per paper: its configurations and its pre-registered criteria, as pure functions.

A paper module declares what to train (``TrainConfig`` grids, see :mod:`ncutils.grid`) and
judges the tables that training and measurement return; it never trains or plots by itself.
A chapter reads ``from ncutils.papers import parker``.
"""
