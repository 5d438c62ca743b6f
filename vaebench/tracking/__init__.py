"""Experiment tracking plugins (built in, registered through the same hooks as third-party
plugins): :mod:`vaebench.tracking.mlflow` logs every finished cell as an MLflow run."""
