# OpenBao 2.6.x / Vault server for Galley: integrated (raft) storage, sealed by an AWS KMS key, so a
# restarted server unseals itself with no operator at hand. OpenBao 2.7 moved `awskms` out to a plugin:
# stay on 2.6.x for this file, or use one of the alternatives in README.md ("Sealing").
#
# Environment instead of literals (never commit keys): VAULT_AWSKMS_SEAL_KEY_ID (note: VAULT_, not
# BAO_), AWS_REGION, and AWS credentials from the default chain (instance role, AWS_ACCESS_KEY_ID...).

storage "raft" {
  path    = "/var/lib/openbao/raft"
  node_id = "galley-vault-1"
}

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/openbao/tls/server.crt"
  tls_key_file  = "/etc/openbao/tls/server.key"
}

seal "awskms" {
  region = "eu-west-1"
  # kms_key_id comes from VAULT_AWSKMS_SEAL_KEY_ID.
}

api_addr      = "https://vault.internal:8200"
cluster_addr  = "https://vault.internal:8201"
ui            = false
