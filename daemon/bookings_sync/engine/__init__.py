"""The sync engine: ``model`` names things, ``meetings`` reads CRM records, ``planner`` decides
(pure), ``executor`` acts, ``retry`` says when to try again, ``cycle`` runs one round and commits.
Nothing here reads the configuration or imports the CLI: settings arrive as arguments."""
