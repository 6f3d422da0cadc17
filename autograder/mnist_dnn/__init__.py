"""Lesson 01 (MNIST with a fully connected network): its checks, probes and judges.

A lesson module exposes CHECKS, GAPS, WHAT, TIME_FACTOR, CLEAN and PROBES_MODULE (the module
the sandbox child imports to find `PROBES`).
"""
from autograder.mnist_dnn.catalogue import CHECKS, CLEAN, GAPS, TIME_FACTOR, WHAT

PROBES_MODULE = "autograder.mnist_dnn.probes"

__all__ = ["CHECKS", "CLEAN", "GAPS", "TIME_FACTOR", "WHAT", "PROBES_MODULE"]
