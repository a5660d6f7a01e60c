"""What tests share: running code under the project's mocks, a config stand-in, canary secrets."""
