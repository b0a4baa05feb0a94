"""Sign-in at identity providers: GitHub and OpenID Connect, and the accounts they link."""
