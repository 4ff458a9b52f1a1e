"""Users, roles and hashed API tokens with scopes."""
