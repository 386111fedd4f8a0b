"""The Loihi target: Lava process graphs run in Lava's bit-accurate fixed_pt simulation."""
