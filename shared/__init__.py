"""What the lessons import: MNIST data, training history, plots and device choice."""
