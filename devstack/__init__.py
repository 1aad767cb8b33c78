"""The local development stack: real Redis and NATS servers from pip packages, the launcher behind `make up`."""
