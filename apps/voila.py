# Voilà reads this file because `make demo` passes --Voila.config_file_paths=apps.
# The served configuration (Host check, kernel culling, kernel cap) lives in xrec_helpers/app/server.py.
from xrec_helpers.app.server import configure

configure(c)  # noqa: F821 - `c` is the config object Voilà provides to its config files
