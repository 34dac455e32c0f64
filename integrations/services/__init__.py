"""Integration framework workflows: plain functions with explicit transactions."""
