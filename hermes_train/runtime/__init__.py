"""The runtime every stage stands on: models and their loading, device and distributed set-up, the stage run, tracking, provenance and run reports."""
