"""The built-in plugins: ordinary plugins, registered under their module names."""
