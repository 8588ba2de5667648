"""The paper's five tasks (section 4)."""
