"""The bit-accurate CPU emulator target."""
