"""Administration with AWS credentials: initialize the CA, manage provisioners."""
