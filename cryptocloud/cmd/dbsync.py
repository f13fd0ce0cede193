"""cryptocloud-dbsync: create and upgrade cryptocloud's database schemas.

    cryptocloud-dbsync upgrade [--revision head] [--schema keystore|control]
    cryptocloud-dbsync version [--schema keystore|control]
    cryptocloud-dbsync stamp REVISION [--schema keystore|control]

The database URL comes from the configuration files: ``[keystore]
connection`` for the keystore schema (the default), ``[database]
connection`` for the control-plane schema.
"""

import sys

import sqlalchemy as sa
from alembic import util as alembic_util
from oslo_config import cfg
from oslo_db import exception as db_exc
from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import service
from cryptocloud.conf import CONF
from cryptocloud.db import engines
from cryptocloud.db import migration

PROG = 'cryptocloud-dbsync'

# Where each schema's database URL and start-up retries are configured.
_CONNECTION_GROUP = {'keystore': 'keystore', 'control': 'database'}


def _url(schema: str) -> str:
    return CONF[_CONNECTION_GROUP[schema]].connection


def _wait_for_database(schema: str) -> str:
    # Honours connect_retries, so an init job started together with the
    # database waits for it instead of failing at once.
    url = _url(schema)
    group = CONF[_CONNECTION_GROUP[schema]]
    engines.create_engine(url, max_pool_size=1,
                          connect_retries=group.connect_retries).dispose()
    return url


def do_upgrade() -> int:
    """Upgrade the schema to a revision (default: the newest)."""
    schema = CONF.command.schema
    url = _wait_for_database(schema)
    migration.upgrade(url, CONF.command.revision, schema=schema)
    print('%s database is at revision %s.'
          % (schema, migration.current(url, schema) or 'base'))
    return 0


def do_version() -> int:
    """Print the schema's current revision ('base' when empty)."""
    schema = CONF.command.schema
    url = _wait_for_database(schema)
    print(migration.current(url, schema) or 'base')
    return 0


def do_stamp() -> int:
    """Record a revision as current without migrating anything."""
    schema = CONF.command.schema
    url = _wait_for_database(schema)
    migration.stamp(url, CONF.command.revision, schema=schema)
    print('%s database stamped at revision %s.'
          % (schema, migration.current(url, schema) or 'base'))
    return 0


def add_command_parsers(subparsers) -> None:
    """Declare the sub-commands (called by oslo.config)."""
    schemas = sorted(migration.SCHEMAS)

    def add(name: str, func, help_text: str):
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument('--schema', default='keystore', choices=schemas,
                            help='Database schema to act on '
                                 '(default: keystore).')
        parser.set_defaults(func=func)
        return parser

    add('upgrade', do_upgrade, do_upgrade.__doc__).add_argument(
        '--revision', default='head',
        help='Revision to upgrade to (default: head).')
    add('version', do_version, do_version.__doc__)
    add('stamp', do_stamp, do_stamp.__doc__).add_argument(
        'revision', help='Revision to record, e.g. head or base.')


command_opt = cfg.SubCommandOpt('command', title='Commands',
                                handler=add_command_parsers,
                                help='Available commands')


def main(argv: list[str] | None = None) -> int:
    """Run one dbsync sub-command; 1 with a message on failure."""
    CONF.register_cli_opt(command_opt)
    # Logs (alembic's progress among them) go to stderr so that stdout
    # carries only the result, e.g. the bare revision of "version".
    logging.register_options(CONF)
    CONF.set_default('use_stderr', True)
    service.prepare_service(argv, prog=PROG)
    schema = CONF.command.schema
    try:
        return CONF.command.func()
    except db_exc.DBConnectionError as exc:
        print('%s: cannot connect to the %s database at %s: %s'
              % (PROG, schema, engines.safe_url(_url(schema)),
                 _first_line(exc)), file=sys.stderr)
    except (db_exc.DBError, sa.exc.SQLAlchemyError) as exc:
        print('%s: %s database error: %s' % (PROG, schema, _first_line(exc)),
              file=sys.stderr)
    except alembic_util.CommandError as exc:
        print('%s: %s' % (PROG, exc), file=sys.stderr)
    except exception.CryptoCloudException as exc:
        print('%s: %s' % (PROG, exc), file=sys.stderr)
    return 1


def _first_line(exc: BaseException) -> str:
    # Driver errors carry SQLAlchemy's background link on later lines.
    inner = getattr(exc, 'inner_exception', None) or exc
    orig = getattr(inner, 'orig', None) or inner
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0]


if __name__ == '__main__':
    sys.exit(main())
