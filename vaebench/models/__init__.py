"""Built-in model plugins. Each module is registered with the plugin manager exactly like an
external plugin (see :data:`vaebench.plugins.DEFAULT_PLUGINS`)."""
