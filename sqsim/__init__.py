"""sqsim: hardware/software co-design simulator and analysis library for efficient CNNs."""
__version__ = "0.1.0"
