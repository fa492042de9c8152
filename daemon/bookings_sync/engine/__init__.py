"""The sync engine: ``planner`` decides (pure), ``executor`` acts, ``cycle`` runs one round and
commits. See each module's docstring for its promises."""
