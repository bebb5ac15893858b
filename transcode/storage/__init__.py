"""Where media is kept: a local folder or an S3/MinIO bucket, behind one interface."""
