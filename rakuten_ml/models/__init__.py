"""Model layer: text classifier, its cleaning and the probability calibration it relies on."""
