"""The nouns (frozen dataclasses) and the errors: what every other layer hands around. Imports nothing else
from perfkit."""

VERSION = "0.1.0"  # perfkit's own version: recorded with runs and part of every cache key
