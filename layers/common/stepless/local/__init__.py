"""The local stack: template loading, moto deployment, HTTPS gateway, `local invoke`."""
