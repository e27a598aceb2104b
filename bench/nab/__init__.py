"""NAB's machine temperature series scored the NAB way: reference detectors, and alerts."""
