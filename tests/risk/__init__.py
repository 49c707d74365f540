"""Tests of the clearinghouse (risk/): money conservation, rounding and the journal."""
