"""Repository-root conftest: nothing heavy here (the plugin is the installed ``pytest_lfm``)."""
