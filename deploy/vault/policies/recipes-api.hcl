# recipes-api: its own and the shared static secrets, its store (MongoDB) and cache credentials.
# Nothing else.
path "secret/data/galley/shared"      { capabilities = ["read"] }
path "secret/data/galley/recipes-api" { capabilities = ["read"] }
path "database/creds/galley-cache"    { capabilities = ["read"] }
path "database/creds/galley-store"    { capabilities = ["read"] }
# Revoke its leases on graceful shutdown (renewal is in the default policy; the lease ids are only
# known to the holder).
path "sys/leases/revoke" { capabilities = ["update"] }
