# rss-api: its own and the shared static secrets, its store (MongoDB), revocation list (cache) and bus
# credentials.
path "secret/data/galley/shared"   { capabilities = ["read"] }
path "secret/data/galley/rss-api"  { capabilities = ["read"] }
path "database/creds/galley-cache" { capabilities = ["read"] }
path "database/creds/galley-store" { capabilities = ["read"] }
path "rabbitmq/creds/galley-bus"   { capabilities = ["read"] }
# Revoke its leases on graceful shutdown (renewal is in the default policy; the lease ids are only
# known to the holder).
path "sys/leases/revoke" { capabilities = ["update"] }
