"""Local PEFT/TRL training (installed as ``ftclient.local_backend``)."""
