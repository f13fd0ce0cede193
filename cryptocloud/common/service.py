"""Start-up shared by every cryptocloud program."""

import sys

from oslo_log import log as logging

from cryptocloud import conf
from cryptocloud import version

CONF = conf.CONF


def prepare_service(argv: list[str] | None = None, prog: str | None = None,
                    default_config_files: list[str] | None = None) -> None:
    """Parse the command line and config files, then set up logging."""
    logging.register_options(CONF)
    argv = sys.argv[1:] if argv is None else argv
    CONF(argv, project='cryptocloud', prog=prog,
         version=version.version_string(),
         default_config_files=default_config_files)
    logging.setup(CONF, 'cryptocloud')
