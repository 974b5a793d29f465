"""The security suite is a package (security.*) so that its conftest does not shadow the
integration tests' `conftest` module when both directories run in one pytest session."""
