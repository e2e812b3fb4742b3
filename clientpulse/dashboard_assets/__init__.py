"""HTML and CSS of the dashboard pages (Python modules, so that any install ships them)."""
