"""snnhw: deploy snntorch spiking networks to neuromorphic hardware through a fixed-point IR."""

__version__ = "0.1.0"
