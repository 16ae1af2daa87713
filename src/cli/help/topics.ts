/**
 * Help topics that are not commands: `akv help provider` and `akv help config`. They are the one
 * source of the akv_provider(7) and akv.json(5) manual pages (scripts/generate-man.mjs renders
 * what `akv help <topic>` prints), as each command's --help text is of akv(1) and akv-agent(8).
 * Keep them short reference texts: the explanations live in docs/ (/usr/share/doc/akv).
 */
export interface HelpTopic {
  /** The manual page this topic becomes: name and section. */
  page: string;
  section: string;
  /** One line for the NAME section and `akv help`. */
  summary: string;
  text: string;
}

const provider = `akv_provider: the OpenSSL 3 provider that keeps private keys in Azure Managed HSM

OpenSSL loads akv_provider.so from its modules directory (\`openssl version -m\`) or from
OPENSSL_MODULES. Private-key operations go over a Unix socket to the akv agent; public-key
operations run locally. Activate \`default\` first, then akv_provider:

  openssl_conf = openssl_init
  [openssl_init]
  providers = provider_sect
  [provider_sect]
  default = default_sect
  akv_provider = akv_sect
  [default_sect]
  activate = 1
  [akv_sect]
  activate = 1
  agent_socket = /run/akv/agent.sock

On the command line: openssl pkeyutl -provider akv_provider -provider default
-inkey managedhsm:myhsm:mykey ...

Keys:
  managedhsm:<hsm>:<key>[?version=<v>]   a key of an Azure Managed HSM (also akv:, keyvault:)
  a key-reference file (\`akv keyref URI --out key.pem\`) wherever a PEM private key file is read

Settings (environment variable / openssl.cnf setting of the provider's section; the environment
wins):
  AKV_AGENT_SOCKET / agent_socket       the agent's socket (default: $XDG_RUNTIME_DIR/akv/agent.sock,
                                        /run/akv/agent.sock for root, else /tmp/akv-<uid>/agent.sock)
  AKV_AGENT_TIMEOUT_MS / agent_timeout_ms
                                        bound on one request, 1 to 3600000 (default 15000)
  AKV_AGENT_AUTOSTART / autostart       start the user's agent when none answers (default yes;
                                        0, no, false or off turns it off)
  AKV_AGENT_COMMAND / agent_command     the akv executable autostart runs (default /usr/bin/akv in
                                        the Debian package)
  AKV_AGENT_USER / agent_user           one more user whose agent may answer (e.g. akv)
  AKV_AGENT_IDLE_EXIT                   seconds an autostarted agent stays without requests (900)
  AKV_LOG_FILE, AKV_LOG_LEVEL           the provider's own log file and level (error, warn, info,
                                        debug or 0-3)

Diagnose with \`akv doctor [URI]\`. Details: /usr/share/doc/akv/provider.md.`;

const config = `akv.json: the configuration file of the akv agent and command-line tool

The first that applies: --config FILE (agent), AKV_CONFIG, $XDG_CONFIG_HOME/akv/config.json
(~/.config/akv/config.json), /etc/akv/config.json; else built-in defaults. Every field is
optional; an unknown field or a value of the wrong type is an error that names the field.
Relative paths are relative to the file's directory.

Fields:
  socket                  the agent's Unix socket path
  socketGroup             a group allowed to use the socket (0660; without it 0600)
  vaults.<name>.endpoint  base URL of an HSM (default https://<name>.managedhsm.azure.net)
  vaults.<name>.caFile    extra CA certificates (PEM) trusted for that endpoint
  vaults.<name>.disableChallengeResourceVerification
                          accept a challenge whose resource is not a parent of the endpoint host
  credential.type         "default" (AZURE_CLI_ACCESS_TOKEN, else DefaultAzureCredential) or
                          "static" (credential.token; the emulator only)
  deadlineMs              deadline of one HSM operation, retries included (default 10000)
  retry.maxRetries, retry.baseDelayMs, retry.maxDelayMs, retry.budgetPercent,
  retry.budgetMinRetries  retries of 429, 5xx and resets, with backoff and a retry budget
  keyCacheTtlMs           how long public keys and key metadata are cached (default 300000)
  maxClients, clientIdleTimeoutMs, maxInFlight, maxInFlightPerClient
                          the agent's limits
  log.level, log.file     log level (trace, debug, info, warn, error) and file (default stderr)
  metricsListen           HOST:PORT of the Prometheus /metrics, /healthz and /readyz listener
                          (default: off)

Example (/etc/akv/config.json):
  { "socket": "/run/akv/agent.sock", "vaults": { "contoso-hsm": {} },
    "log": { "level": "info" }, "metricsListen": "127.0.0.1:9464" }

Environment: AKV_CONFIG, AKV_AGENT_SOCKET, AKV_LOG_FILE, AKV_LOG_LEVEL override the file;
AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET, ... go to DefaultAzureCredential.
Details: /usr/share/doc/akv/configuration.md.`;

export const HELP_TOPICS: Record<string, HelpTopic> = {
  provider: {
    page: 'akv_provider',
    section: '7',
    summary: 'OpenSSL 3 provider for keys in Azure Key Vault Managed HSM',
    text: provider,
  },
  config: {
    page: 'akv.json',
    section: '5',
    summary: 'configuration file of the akv agent and command-line tool',
    text: config,
  },
};
