# rss-worker: its own and the shared static secrets, its store (MongoDB), cache and bus credentials (the cache:
# storing entries invalidates rss-api's cached pages of entries).
path "secret/data/galley/shared"     { capabilities = ["read"] }
path "secret/data/galley/rss-worker" { capabilities = ["read"] }
path "database/creds/galley-cache"   { capabilities = ["read"] }
path "database/creds/galley-store"   { capabilities = ["read"] }
path "rabbitmq/creds/galley-bus"     { capabilities = ["read"] }
# Revoke its leases on graceful shutdown (renewal is in the default policy; the lease ids are only
# known to the holder).
path "sys/leases/revoke" { capabilities = ["update"] }
