"""cryptocloud-healthcheck: the HEALTHCHECK of the workload images.

Docker runs it inside the container of a vHSM or a service instance,
whose command is ``<program> --config-file <path>``.  It finds that
config file on the command line of process 1 (or takes ``--config-file``
itself), reads the address to probe from it and asks ``GET /healthz``:

- vHSM: ``[vhsm] host`` and ``status_port``; when the status endpoint is
  off (``status_port = 0``) it can only check that ``[vhsm] port``
  accepts TCP connections;
- crypto service: ``[cryptoservice] host`` and ``port``.

Exit status 0 when healthy (``/healthz`` answered 200), 1 otherwise; one
line on stdout says why.  Only the standard library is used, so that it
starts fast and cannot be broken by the service's own dependencies.
"""

import argparse
import configparser
import http.client
import os
import socket
import sys

DEFAULT_TIMEOUT = 3.0
VHSM = 'vhsm'
CRYPTOSERVICE = 'cryptoservice'
KINDS = (VHSM, CRYPTOSERVICE)
# Defaults of cryptocloud/conf/vhsm.py and cryptocloud/conf/cryptoservice.py
# (not imported: that would load oslo.config).
DEFAULT_HOST = '127.0.0.1'
DEFAULT_VHSM_PORT = 9610
DEFAULT_VHSM_STATUS_PORT = 0
DEFAULT_CRYPTOSERVICE_PORT = 9620
# Addresses a server listens on but a client cannot connect to.
_WILDCARDS = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '::1',
              '[::]': '::1'}


class HealthcheckError(Exception):
    """The workload is not healthy or cannot be probed; str() says why."""


def process_argv(pid: int = 1) -> list[str]:
    """The command line of ``pid`` (empty when it cannot be read)."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode('utf-8', 'replace') for a in raw.split(b'\0') if a]


def _option_values(argv: list[str], name: str) -> list[str]:
    values = []
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(name + '='):
            values.append(arg[len(name) + 1:])
    return values


def config_files(argv: list[str]) -> list[str]:
    """The config files an oslo.config program reads, in order.

    Every ``--config-file`` value, then the ``*.conf`` files of every
    ``--config-dir`` (sorted, as oslo.config reads them).
    """
    files = _option_values(argv, '--config-file')
    for directory in _option_values(argv, '--config-dir'):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        files.extend(os.path.join(directory, n) for n in names
                     if n.endswith('.conf'))
    return files


def kind_from_argv(argv: list[str]) -> str | None:
    """'vhsm' or 'cryptoservice' from a workload's command line."""
    for arg in argv:
        base = os.path.basename(arg)
        for kind in KINDS:
            if base in ('cryptocloud-' + kind, 'cryptocloud.cmd.' + kind):
                return kind
    return None


def read_config(paths: list[str]) -> configparser.ConfigParser:
    """Parse ``paths`` like oslo.config would (later files win)."""
    # oslo.config allows repeated keys (multi-valued options) and uses
    # "$name" substitution, which configparser must leave alone.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    for path in paths:
        try:
            with open(path, encoding='utf-8') as f:
                parser.read_file(f, source=path)
        except OSError as exc:
            raise HealthcheckError('cannot read %s: %s'
                                   % (path, exc.strerror or exc)) from None
        except configparser.Error as exc:
            first = str(exc).splitlines()[0]
            raise HealthcheckError('cannot parse %s: %s'
                                   % (path, first)) from None
    return parser


def _port(parser: configparser.ConfigParser, section: str, name: str,
          default: int) -> int:
    value = parser.get(section, name, fallback=None)
    if value is None or not value.strip():
        return default
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise HealthcheckError('[%s] %s is not a port: %r'
                               % (section, name, value))
    return port


def _host(parser: configparser.ConfigParser, section: str) -> str:
    host = parser.get(section, 'host', fallback=DEFAULT_HOST).strip()
    return _WILDCARDS.get(host, host.strip('[]'))


def guess_kind(parser: configparser.ConfigParser) -> str:
    """The kind of workload a config file is for, from its sections."""
    if parser.has_section(CRYPTOSERVICE):
        return CRYPTOSERVICE
    if parser.has_section(VHSM):
        return VHSM
    raise HealthcheckError('the config has neither a [vhsm] nor a '
                           '[cryptoservice] section')


def probe_target(parser: configparser.ConfigParser,
                 kind: str) -> tuple[str, int, str | None]:
    """(host, port, path) to probe; path None means a TCP connect only.

    :raises HealthcheckError: when there is nothing that can be probed.
    """
    if kind == CRYPTOSERVICE:
        port = _port(parser, CRYPTOSERVICE, 'port',
                     DEFAULT_CRYPTOSERVICE_PORT)
        if port == 0:
            raise HealthcheckError('[cryptoservice] port is 0 (a random '
                                   'port): nothing to probe')
        return _host(parser, CRYPTOSERVICE), port, '/healthz'
    status_port = _port(parser, VHSM, 'status_port',
                        DEFAULT_VHSM_STATUS_PORT)
    if status_port:
        return _host(parser, VHSM), status_port, '/healthz'
    port = _port(parser, VHSM, 'port', DEFAULT_VHSM_PORT)
    if port == 0:
        raise HealthcheckError('[vhsm] status_port and port are both 0: '
                               'nothing to probe')
    return _host(parser, VHSM), port, None


def _where(host: str, port: int) -> str:
    if ':' in host:
        return '[%s]:%d' % (host, port)
    return '%s:%d' % (host, port)


def probe(host: str, port: int, path: str | None,
          timeout: float = DEFAULT_TIMEOUT) -> str:
    """Probe once; the success line, or HealthcheckError saying why not."""
    where = _where(host, port)
    if path is None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            raise HealthcheckError('no connection to %s: %s'
                                   % (where, _reason(exc))) from None
        return 'accepting connections on %s' % where
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request('GET', path, headers={'Connection': 'close'})
        resp = conn.getresponse()
        resp.read(4096)
        status = resp.status
    except (OSError, http.client.HTTPException) as exc:
        raise HealthcheckError('GET http://%s%s failed: %s'
                               % (where, path, _reason(exc))) from None
    finally:
        conn.close()
    if status != 200:
        raise HealthcheckError('GET http://%s%s answered %d'
                               % (where, path, status))
    return 'GET http://%s%s answered 200' % (where, path)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return 'timed out'
    return getattr(exc, 'strerror', None) or str(exc) or type(exc).__name__


def check(argv: list[str] | None = None) -> str:
    """Run the health check described by ``argv``; the success line.

    :raises HealthcheckError: when unhealthy or when it cannot probe.
    """
    parser = argparse.ArgumentParser(
        prog='cryptocloud-healthcheck',
        description='Exit 0 when the vHSM or crypto service of this '
                    'container answers GET /healthz with 200.')
    parser.add_argument('--config-file', action='append', default=[],
                        help='Config file of the workload (default: those '
                             'on the command line of --pid).')
    parser.add_argument('--kind', choices=KINDS,
                        help='Workload kind (default: from the program '
                             'name of --pid, else from the config).')
    parser.add_argument('--pid', type=int, default=1,
                        help='Process whose command line names the config '
                             'file (default: 1, the container command).')
    parser.add_argument('--timeout', type=float, default=DEFAULT_TIMEOUT,
                        help='Seconds to wait for the answer (default: '
                             '%(default)s).')
    args = parser.parse_args(argv)
    kind = args.kind
    files = args.config_file
    if not files:
        workload = process_argv(args.pid)
        files = config_files(workload)
        kind = kind or kind_from_argv(workload)
        if not files:
            raise HealthcheckError(
                'no --config-file on the command line of process %d (%s)'
                % (args.pid, ' '.join(workload[:3]) or 'unreadable'))
    config = read_config(files)
    kind = kind or guess_kind(config)
    host, port, path = probe_target(config, kind)
    return probe(host, port, path, timeout=args.timeout)


def main(argv: list[str] | None = None) -> int:
    try:
        print('healthy: %s' % check(argv))
    except HealthcheckError as exc:
        print('unhealthy: %s' % exc)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
