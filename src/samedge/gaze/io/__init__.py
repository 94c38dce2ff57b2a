"""Frame sources and result writers of the gaze pipeline."""
