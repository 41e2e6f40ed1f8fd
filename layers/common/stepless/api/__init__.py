"""HTTP layer: API Gateway payload-2.0 events in, step-ca JSON out."""
