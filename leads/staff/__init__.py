"""The staff side: what the clinic does with its leads (export today; the staff area later)."""
