"""Executors that ship with corral (run by agents as separate processes)."""
