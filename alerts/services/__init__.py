"""Alert pipeline workflows (plain functions, explicit transactions)."""
