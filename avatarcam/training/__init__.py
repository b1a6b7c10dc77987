"""Training the motion model (PyTorch; a training-only dependency: the product runs the trained
network in numpy, `avatarcam.motion.network`)."""
