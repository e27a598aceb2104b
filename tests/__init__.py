"""The test suite: real services, no mocks."""
