"""Control-plane scale: 100 compute nodes, 2,000 workloads, one process.

Registers 100 nodes (50 device, 50 service) in a fresh control database
(SQLite in a temporary directory unless ``--database`` names another),
then builds 100 vHSM groups of 10 and 100 services of 10 instances
through the real conductor code: the task rows are written the way the
API writes them (``cryptocloud.api.tasks.record`` plus the resource row)
and a real ``TaskRunner`` runs the real workflows, which ask the real
``Scheduler`` for hosts.

What is simulated: the compute side.  Every node is a real
``ComputeManager`` with the ``RecordingDriver`` (workloads are recorded,
no process starts), and the conductor reaches them through a small
in-process adapter with the ``ComputeAPI`` method signatures that routes
each call by ``host`` straight to that node's manager.  There is no
message bus: the in-process ``fake://`` transport polls at about 20
calls/s, so going through it would measure the bus, not the control
plane.  Once the fleet is built its objects are moved out of the
garbage collector's reach (``gc.freeze``): a real API or conductor
process does not hold the compute side's heap, and full collections over
it cost up to 200 ms here.  Nodes do not send heartbeats during the
run (the heartbeat timeout is set long enough that none goes DOWN).

With that state in place it measures one scheduling decision, one
periodic reconcile pass, one node-liveness pass, one whole periodic pass,
and the admin list APIs through the real pecan app served by cheroot with
http_basic auth.  Baseline, in the same run: the same rows fetched by one
plain SQLAlchemy Core SELECT (the floor for a list call) and a COUNT(*).

Last, the heartbeat load: the conductor's real RPC server on RabbitMQ (a
virtual host made for the run on the local broker, or
``--transport-url``) while all 100 nodes send their real heartbeats
(what ``ComputeService.heartbeat`` sends: every workload's status and
the node's load, about 20 workloads each) every
``--heartbeat-interval`` seconds.
It reports the heartbeat round trip (baseline: the same heartbeat
handled by a direct call, no bus), the heartbeats handled per second,
and the periodic pass (baseline: the same pass without heartbeats) and a
list call measured again under that load.  The nodes' side runs in a
process of its own, as it would on other machines.

    python bench/control_plane_scale.py [--database URL] [--groups 100]
        [--services 100] [--size 10] [--requests 200]
        [--transport-url URL|none] [--heartbeat-interval 1]
        [--heartbeat-seconds 20]
"""

import argparse
import cProfile
import gc
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid

import bcrypt
import requests
import sqlalchemy as sa

from cryptocloud.api import app as api_app
from cryptocloud.api import tasks as api_tasks
from cryptocloud.common import context as cc_context
from cryptocloud.common import rpc
from cryptocloud.common import secretfile
from cryptocloud.common import states
from cryptocloud.common import wsgi
from cryptocloud.compute import manager as compute_manager
from cryptocloud.compute.drivers import recording
from cryptocloud.conductor import balancer as balancer_mod
from cryptocloud.conductor import manager as conductor_manager
from cryptocloud.conductor import nodes as nodes_mod
from cryptocloud.conductor import periodic as periodic_mod
from cryptocloud.conductor import rpcapi as conductor_rpcapi
from cryptocloud.conductor import task_runner
from cryptocloud.conductor.scheduler import scheduler as scheduler_mod
from cryptocloud.conf import CONF
from cryptocloud.db import api as db_api
from cryptocloud.db import migration

NODES_PER_ROLE = 50
CAPACITY = 40
HEARTBEAT_TIMEOUT = 24 * 3600
SCHEDULE_GOAL = 1.0
PASS_GOAL = 1.0
LIST_GOAL = 0.200
ADMIN = ('bench-admin', 'bench-password')
LISTS = (('/v1/nodes', 'nodes'),
         ('/v1/vhsms?limit=1000', 'vhsms'),
         ('/v1/instances?limit=1000', 'service_instances'),
         ('/v1/tasks?limit=1000', 'tasks'),
         ('/v1/associations?limit=1000', 'associations'))


class InProcessCompute:
    """The ComputeAPI methods, routed by host to in-process managers."""

    def __init__(self, managers: dict) -> None:
        self.managers = managers

    def start_vhsm(self, ctxt, host, vhsm_id, group_id, image=None):
        """Start a vHSM on ``host``."""
        return self.managers[host].start_vhsm(ctxt, vhsm_id, group_id,
                                              image=image)

    def start_instance(self, ctxt, host, instance_id, service_id, group_id,
                       vhsm_endpoints, credentials, image=None):
        """Start a service instance on ``host``."""
        return self.managers[host].start_instance(
            ctxt, instance_id, service_id, group_id, list(vhsm_endpoints),
            [dict(c) for c in credentials], image=image)

    def update_instance(self, ctxt, host, instance_id, vhsm_endpoints,
                        credentials):
        """Reconfigure an instance on ``host``."""
        return self.managers[host].update_instance(
            ctxt, instance_id, list(vhsm_endpoints),
            [dict(c) for c in credentials])

    def stop_workload(self, ctxt, host, workload_id):
        """Stop a workload on ``host``."""
        return self.managers[host].stop_workload(ctxt, workload_id)

    def list_workloads(self, ctxt, host):
        """The workloads on ``host``."""
        return self.managers[host].list_workloads(ctxt)


class NoConductor:
    """The API's conductor client; the list calls never cast."""

    def do_task(self, ctxt, task_id):
        """Nothing to do: this benchmark only reads through the API."""


def _compute_conf(workdir: str, host: str, role: str, seed: str):
    opts = types.SimpleNamespace(
        host=host, address='127.0.0.1', roles=[role],
        vhsm_capacity=CAPACITY, instance_capacity=CAPACITY,
        driver='recording', state_path=os.path.join(workdir, host),
        port_range_start=20000, port_range_end=29999,
        master_key_file=os.path.join(workdir, 'master.key'),
        group_secret_seed_file=seed, keystore_connection='sqlite://',
        start_timeout=30.0, heartbeat_interval=1, watch_interval=0,
        unhealthy_threshold=3)
    return types.SimpleNamespace(compute=opts)


def build_nodes(db, workdir: str) -> dict:
    """Register the nodes and make one manager for each."""
    seed = os.path.join(workdir, 'group-secret.seed')
    secretfile.create_secret_file(seed)
    managers = {}
    for role in ('device', 'service'):
        for i in range(NODES_PER_ROLE):
            host = '%s-%03d' % (role, i)
            db.register_node(host, '127.0.0.1', [role], CAPACITY, CAPACITY)
            conf = _compute_conf(workdir, host, role, seed)
            managers[host] = compute_manager.ComputeManager(
                recording.RecordingDriver(conf.compute.state_path),
                host=host, conf=conf)
    return managers


def _run_all(db, runner, task_ids: list[str], timeout: float) -> None:
    """Submit every task, again while workers are busy, until all end."""
    waiting = list(task_ids)
    deadline = time.monotonic() + timeout
    while waiting:
        if time.monotonic() > deadline:
            raise RuntimeError('%d tasks did not finish' % len(waiting))
        still = []
        for task_id in waiting:
            task = db.get('tasks', task_id)
            if task['state'] == states.FAILED:
                raise RuntimeError('task %s failed: %s'
                                   % (task_id, task['error']))
            if task['state'] == states.SUCCEEDED:
                continue
            if task['state'] == states.PENDING:
                runner.submit(task_id)
            still.append(task_id)
        waiting = still
        if waiting:
            time.sleep(0.05)


def build_workloads(db, runner, groups: int, services: int, size: int
                    ) -> float:
    """Create the groups, then the services, as the API does; seconds."""
    ctx = cc_context.get_admin_context()
    ctx.project_id = ctx.project_id or 'bench'
    project = ctx.project_id
    start = time.monotonic()
    group_ids, task_ids = [], []
    for i in range(groups):
        group_id = str(uuid.uuid4())
        task = api_tasks.record(db, ctx, 'create_vhsm_group', 'vhsm_group',
                                group_id, {'name': 'g%d' % i, 'size': size})
        db.create('vhsm_groups', {
            'id': group_id, 'name': 'g%d' % i, 'project_id': project,
            'target_size': size, 'state': states.CREATING})
        group_ids.append(group_id)
        task_ids.append(task['id'])
    _run_all(db, runner, task_ids, timeout=600)
    task_ids = []
    for i in range(services):
        service_id = str(uuid.uuid4())
        cred_id = uuid.uuid4().hex
        group_id = group_ids[i % len(group_ids)]
        task = api_tasks.record(db, ctx, 'create_service', 'service',
                                service_id, {
                                    'name': 's%d' % i, 'group_id': group_id,
                                    'instances': size, 'replicas': 0,
                                    'algorithms': None,
                                    'credential_id': cred_id})
        db.create('services', {
            'id': service_id, 'name': 's%d' % i, 'project_id': project,
            'group_id': group_id, 'target_instances': size, 'replicas': 0,
            'algorithms': None, 'state': states.CREATING})
        db.create('service_credentials', {
            'id': cred_id, 'service_id': service_id, 'project_id': project,
            'secret_sha256': 'ab' * 32})
        task_ids.append(task['id'])
    _run_all(db, runner, task_ids, timeout=600)
    return time.monotonic() - start


class GcPauses:
    """Wall time of the collector's full (generation 2) collections."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info['generation'] != 2:
            return
        if phase == 'start':
            self._start = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._start)


def _timed(func, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _balancer_rows(db, scheduler) -> list[tuple]:
    """One balancer pass over a policy per service, and one heartbeat of
    a node's workloads with and without load figures.

    Every instance reports figures inside the band, so every policy holds:
    a pass still reads every service, instance and task and writes every
    policy (its pressure point), which is the cost that grows with the
    fleet; a pass that scales also records a task per decision.
    """
    figures = {'requests_per_s': 20.0, 'in_flight': 1, 'p95_ms': 4.0,
               'cpu': 0.1}
    services = db.list('services')
    for service in services:
        db.create('scaling_policies', {
            'service_id': service['id'], 'project_id': service['project_id'],
            'metric': 'requests_per_s', 'lower': 5.0, 'upper': 50.0,
            'add_instances': 1, 'remove_instances': 1, 'add_vhsms': 1,
            'remove_vhsms': 1, 'min_instances': 1, 'max_instances': 20,
            'min_vhsms': 1, 'max_vhsms': 20, 'cooldown_seconds': 60,
            'window_seconds': 3600, 'enabled': True, 'generation': 0})
    balance = balancer_mod.Balancer(db, scheduler, owner='bench-conductor')

    def report_and_balance():
        db.record_loads('service_instances', {
            i['id']: figures for i in db.list('service_instances')})
        start = time.perf_counter()
        balance.run()
        return time.perf_counter() - start

    passes = [report_and_balance() for _ in range(5)]
    held = sum(1 for p in db.list('scaling_policies')
               if p['last_decision'] == 'hold')
    # A service node's heartbeat: its instances, with figures and
    # without (the baseline: what a heartbeat cost before figures were
    # stored per workload).
    node = next(n for n in db.list('nodes') if 'service' in n['roles'])
    rows = db.list('service_instances', filters={'node_id': node['id']})

    def beat(load):
        statuses = [{'workload_id': r['id'], 'kind': 'cryptoservice',
                     'state': 'running', 'healthy': True,
                     'host': r['host'], 'port': r['port'],
                     'workload_ref': r['workload_ref'], 'load': load}
                    for r in rows]
        return lambda: nodes_mod.heartbeat(db, node['hostname'], statuses,
                                           {})

    with_figures = _timed(beat(figures), 20)
    without = _timed(beat({}), 20)
    print('balancer: %d policies, %d holding after each pass; heartbeat '
          'baseline: the same heartbeat without figures'
          % (len(services), held))
    return [
        ('balancer pass, %d policies (median of 5)' % len(services),
         statistics.median(passes), None, PASS_GOAL),
        ('heartbeat, %d instances with figures (p50)' % len(rows),
         statistics.median(with_figures), statistics.median(without),
         None),
    ]


class RabbitVhost:
    """A RabbitMQ virtual host on the local broker, for this run only."""

    def __init__(self) -> None:
        self.name = 'cc-bench-%s' % uuid.uuid4().hex[:10]
        self._ctl('add_vhost', self.name)
        self._ctl('set_permissions', '-p', self.name, 'guest', '.*', '.*',
                  '.*')
        self.url = 'rabbit://guest:guest@127.0.0.1:5672/%s' % self.name

    def delete(self) -> None:
        self._ctl('delete_vhost', self.name)

    @staticmethod
    def _ctl(*args) -> None:
        subprocess.run(['rabbitmqctl', '-q', *args], check=True,
                       capture_output=True, timeout=60)


def _send_heartbeats(payload_file: str, transport: str, interval: float,
                     seconds: float, result_file: str) -> int:
    """The simulated nodes' side, run in a process of its own: every
    node sends its heartbeat over the bus every ``interval`` seconds."""
    with open(payload_file) as f:
        payloads = json.load(f)
    CONF([], project='cryptocloud', default_config_files=[],
         default_config_dirs=[])
    CONF.set_override('transport_url', transport)
    rpc.init(CONF)
    api = conductor_rpcapi.ConductorAPI(timeout=30)
    ctxt = cc_context.get_admin_context()
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []

    def beat(host: str, payload: dict, offset: float) -> None:
        if stop.wait(offset):
            return
        next_at = time.monotonic()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                api.heartbeat(ctxt, host, payload['workloads'],
                              payload['load'])
                latencies.append(time.perf_counter() - start)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append('%s: %s' % (type(exc).__name__, exc))
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=beat, daemon=True, args=(
        host, payload, interval * i / len(payloads)))
        for i, (host, payload) in enumerate(sorted(payloads.items()))]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    with open(result_file, 'w') as f:
        json.dump({'latencies': latencies, 'errors': errors[:5],
                   'failed': len(errors),
                   'seconds': time.monotonic() - began}, f)
    rpc.cleanup()
    return 0


def _heartbeat_rows(db, runner, managers: dict, api_base: str,
                    session, workdir: str, *, transport: str,
                    interval: float, seconds: float,
                    requests_count: int) -> list[tuple]:
    """Every node heartbeating over the bus from another process; what
    that costs the conductor and does to its passes and a list call."""
    payloads = {}
    for host, manager in managers.items():
        statuses = manager.workload_statuses()
        payloads[host] = {'workloads': [st.to_dict() for st in statuses],
                          'load': manager.node_load(statuses)}
    payload_file = os.path.join(workdir, 'heartbeats.json')
    result_file = os.path.join(workdir, 'heartbeat-results.json')
    with open(payload_file, 'w') as f:
        json.dump(payloads, f)
    # Baseline: one node's heartbeat handled by a direct call, no bus.
    host = sorted(payloads)[len(payloads) // 2]
    direct = _timed(lambda: nodes_mod.heartbeat(
        db, host, payloads[host]['workloads'], payloads[host]['load']), 50)
    quiet_pass = _timed(periodic_mod.PeriodicTasks(
        db, runner, interval=3600,
        heartbeat_timeout=HEARTBEAT_TIMEOUT).run_once, 5)

    server = rpc.get_server(
        rpc.CONDUCTOR_TOPIC, 'bench-conductor',
        conductor_manager.RPC_API_VERSION,
        [conductor_manager.ConductorManager(db, runner)])
    server.start()
    sender = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), '--send-heartbeats',
         payload_file, '--transport-url', transport,
         '--heartbeat-interval', str(interval),
         '--heartbeat-seconds', str(seconds), '--results', result_file])
    cpu0, wall0 = time.process_time(), time.monotonic()
    try:
        time.sleep(min(interval, seconds / 4) + 1.0)  # all under way
        periodic = periodic_mod.PeriodicTasks(
            db, runner, interval=3600, heartbeat_timeout=HEARTBEAT_TIMEOUT)
        whole = _timed(periodic.run_once, 5)
        lists = []
        path = '/v1/instances?limit=1000'
        stop_at = wall0 + seconds - 1.0
        while len(lists) < requests_count and time.monotonic() < stop_at:
            start = time.perf_counter()
            answer = session.get(api_base + path, timeout=30)
            lists.append(time.perf_counter() - start)
            answer.raise_for_status()
        sender.wait(seconds + 120)
    finally:
        if sender.poll() is None:
            sender.kill()
        server.stop()
        server.wait()
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    with open(result_file) as f:
        result = json.load(f)
    latencies = result['latencies']
    print('heartbeats: %d nodes every %.1f s for %.0f s from another '
          'process: %d handled (%.0f/s), %d failed%s; the conductor and '
          'API process used %.0f%% of one core meanwhile'
          % (len(payloads), interval, result['seconds'], len(latencies),
             len(latencies) / result['seconds'], result['failed'],
             (' (first: %s)' % result['errors'][0]) if result['errors']
             else '', 100 * cpu / wall))
    workloads = len(payloads[host]['workloads'])
    label = 'every %g s' % interval
    return [
        ('heartbeat over RabbitMQ, %d workloads, %s (p50)'
         % (workloads, label), statistics.median(latencies),
         statistics.median(direct), None),
        ('  same, p99', _p99(latencies), _p99(direct), None),
        ('whole periodic pass under heartbeats (median of 5)',
         statistics.median(whole), statistics.median(quiet_pass),
         PASS_GOAL),
        ('GET %s under heartbeats p99 (%d)' % (path, len(lists)),
         _p99(lists), None, LIST_GOAL),
    ]


def _serve_api(db, workdir: str):
    htpasswd = os.path.join(workdir, 'htpasswd')
    hashed = bcrypt.hashpw(ADMIN[1].encode(), bcrypt.gensalt(rounds=4))
    with open(htpasswd, 'w') as f:
        f.write('%s:%s:admin:admin\n' % (ADMIN[0], hashed.decode()))
    CONF([], project='cryptocloud', default_config_files=[],
         default_config_dirs=[])
    CONF.set_override('auth_strategy', 'http_basic', group='api')
    CONF.set_override('http_basic_auth_user_file', htpasswd, group='api')
    app = api_app.setup_app(CONF, db, NoConductor())
    return wsgi.serve(app, '127.0.0.1', 0, 16)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--database', help='control DB URL (default: '
                        'SQLite in a temporary directory)')
    parser.add_argument('--groups', type=int, default=100)
    parser.add_argument('--services', type=int, default=100)
    parser.add_argument('--size', type=int, default=10,
                        help='vHSMs per group and instances per service')
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--transport-url', default=None,
                        help='bus for the heartbeat phase (default: a '
                        'new virtual host on the local RabbitMQ; "none" '
                        'skips the phase)')
    parser.add_argument('--heartbeat-interval', type=float, default=1.0,
                        help='seconds between two heartbeats of a node '
                        '(default 1, the tests\' setting; 5 is the '
                        'default of [compute] heartbeat_interval)')
    parser.add_argument('--heartbeat-seconds', type=float, default=20.0)
    parser.add_argument('--send-heartbeats', metavar='PAYLOADS',
                        help=argparse.SUPPRESS)
    parser.add_argument('--results', help=argparse.SUPPRESS)
    parser.add_argument('--profile', action='store_true',
                        help='print a cProfile of one periodic pass')
    args = parser.parse_args()
    if args.send_heartbeats:
        return _send_heartbeats(args.send_heartbeats, args.transport_url,
                                args.heartbeat_interval,
                                args.heartbeat_seconds, args.results)
    workdir = tempfile.mkdtemp(prefix='cc-scale-')
    url = args.database or 'sqlite:///%s' % os.path.join(workdir,
                                                         'control.sqlite')
    migration.upgrade(url, schema='control')
    db = db_api.Connection(url, max_pool_size=32)
    engine = sa.create_engine(url)
    managers, runner, server, vhost = {}, None, None, None
    rows = []
    try:
        managers = build_nodes(db, workdir)
        compute = InProcessCompute(managers)
        scheduler = scheduler_mod.Scheduler(
            db, heartbeat_timeout=HEARTBEAT_TIMEOUT)
        runner = task_runner.TaskRunner(
            db, compute, scheduler, owner='bench-conductor',
            workers=args.workers, lease_seconds=600,
            provision_timeout=120, poll_interval=0.02)
        runner.start()
        build = build_workloads(db, runner, args.groups, args.services,
                                args.size)
        nvhsms = db.count('vhsms', {'state': states.ACTIVE})
        ninst = db.count('service_instances', {'state': states.ACTIVE})
        # The simulated compute side (100 managers, 2,000 recorded specs)
        # lives in this process; in a cloud it lives elsewhere.  Freezing
        # what exists now keeps the collector's full passes (which walk
        # every tracked object) from charging its heap to the API and the
        # conductor; the pauses that remain are reported below.
        gc.collect()
        gc.freeze()
        print('built %d ACTIVE vHSMs + %d ACTIVE instances (%d '
              'associations, %d tasks) on %d nodes in %.1f s'
              % (nvhsms, ninst, db.count('associations'), db.count('tasks'),
                 len(managers), build))

        # (1) one scheduling decision, with the fleet in place.
        # A group that grows by ``size``: avoid its current members' nodes.
        group = db.list('vhsm_groups')[0]
        spread = [r['node_id'] for r in db.list(
            'vhsms', filters={'group_id': group['id']})]
        sched = _timed(lambda: scheduler.select_hosts(
            'vhsm', args.size, spread=spread), 20)
        rows.append(('schedule %d vHSMs (p50)' % args.size,
                     statistics.median(sched), None, SCHEDULE_GOAL))
        rows.append(('schedule %d vHSMs (max)' % args.size, max(sched),
                     None, SCHEDULE_GOAL))

        # (2) the periodic passes.
        periodic = periodic_mod.PeriodicTasks(
            db, runner, interval=3600, heartbeat_timeout=HEARTBEAT_TIMEOUT)
        reconcile = _timed(periodic.reconcile, 5)
        liveness = _timed(periodic.check_nodes, 5)
        whole = _timed(periodic.run_once, 5)
        rows.append(('reconcile pass (median of 5)',
                     statistics.median(reconcile), None, PASS_GOAL))
        rows.append(('node-liveness pass (median of 5)',
                     statistics.median(liveness), None, PASS_GOAL))
        rows.append(('whole periodic pass (median of 5)',
                     statistics.median(whole), None, PASS_GOAL))
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(periodic.run_once)
            pstats.Stats(prof).sort_stats('cumulative').print_stats(15)

        # (2b) the pressure balancer and the per-workload figures.
        rows.extend(_balancer_rows(db, scheduler))

        # (3) the admin list APIs, and the plain SELECT under each.
        server = _serve_api(db, workdir)
        base = 'http://127.0.0.1:%d' % server.port
        session = requests.Session()
        session.auth = ADMIN
        pauses = GcPauses()
        gc.callbacks.append(pauses)
        meta = sa.MetaData()
        for path, table_name in LISTS:
            table = sa.Table(table_name, meta, autoload_with=engine)
            answer = session.get(base + path, timeout=30)
            answer.raise_for_status()
            body = answer.json()
            count = len(next(v for v in body.values() if isinstance(v, list)))
            times = []
            for _ in range(args.requests):
                start = time.perf_counter()
                answer = session.get(base + path, timeout=30)
                times.append(time.perf_counter() - start)
                if answer.status_code != 200:
                    raise RuntimeError('%s answered %d' % (
                        path, answer.status_code))
            query = sa.select(table).limit(1000)
            counting = sa.select(sa.func.count()).select_from(table)

            def select_rows(query=query):
                with engine.connect() as conn:
                    return conn.execute(query).all()

            def count_rows(counting=counting):
                with engine.connect() as conn:
                    return conn.execute(counting).scalar()

            floor = _timed(select_rows, args.requests)
            counts = _timed(count_rows, args.requests)
            rows.append(('GET %s (%d rows) p99' % (path, count),
                         _p99(times), _p99(floor), LIST_GOAL))
            rows.append(('  same, p50 (baseline: COUNT(*) p99)',
                         statistics.median(times), _p99(counts), None))
        gc.callbacks.remove(pauses)
        print('full GC collections during the list calls: %d, longest '
              '%.1f ms' % (len(pauses.pauses),
                           max(pauses.pauses, default=0) * 1000))

        # (4) 100 nodes heartbeating over RabbitMQ.
        transport = args.transport_url
        if transport is None:
            vhost = RabbitVhost()
            transport = vhost.url
        if transport != 'none':
            CONF.set_override('transport_url', transport)
            rpc.init(CONF)
            rows.extend(_heartbeat_rows(
                db, runner, managers, base, session, workdir,
                transport=transport, interval=args.heartbeat_interval,
                seconds=args.heartbeat_seconds,
                requests_count=args.requests))
    finally:
        rpc.cleanup()
        if vhost is not None:
            vhost.delete()
        if server is not None:
            server.stop()
        if runner is not None:
            runner.stop(wait=True)
        for manager in managers.values():
            manager.close()
        engine.dispose()
        db.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print('%-48s %10s %12s %8s' % ('', 'figure ms', 'baseline ms',
                                   'goal ms'))
    missed = []
    for name, value, floor, goal in rows:
        print('%-48s %10.1f %12s %8s' % (
            name, value * 1000,
            '-' if floor is None else '%.1f' % (floor * 1000),
            '-' if goal is None else '%.0f' % (goal * 1000)))
        if goal is not None and value >= goal:
            missed.append(name)
    print('(list baseline: one SQLAlchemy Core SELECT ... LIMIT 1000 of the '
          'same table, p99)')
    if missed:
        print('goal missed: %s' % '; '.join(missed))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
