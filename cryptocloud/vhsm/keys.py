"""Tenant key lifecycle inside a vHSM: create, rotate, state changes, purge.

Key material is generated here, wrapped under the group's domain key and
only then written to the keystore; it is unwrapped here again when used.
Nothing in this module returns or logs secret material except ``export``
of a key its owner marked exportable.
"""

import datetime
import uuid

from oslo_log import log as logging

from cryptocloud.common import exception
from cryptocloud.common import states
from cryptocloud.crypto import keyspec
from cryptocloud.crypto import wrapping
from cryptocloud.vhsm import keycache
from cryptocloud.vhsm.keystore import api as keystore_api

LOG = logging.getLogger(__name__)

MIN_PENDING_DAYS = 7
MAX_PENDING_DAYS = 30
MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 255


def _utcnow() -> datetime.datetime:
    # The keystore stores naive UTC timestamps.
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat() + 'Z'


def key_to_dict(record: keystore_api.KeyRecord) -> dict:
    """The key metadata a tenant may see (no material)."""
    return {
        'key_id': record.key_id,
        'project_id': record.project_id,
        'name': record.name,
        'description': record.description,
        'algorithm': record.algorithm,
        'purpose': record.purpose,
        'state': record.state,
        'exportable': record.exportable,
        'latest_version': record.latest_version,
        'min_decryption_version': record.min_decryption_version,
        'created_at': _iso(record.created_at),
        'updated_at': _iso(record.updated_at),
        'deletion_date': _iso(record.deletion_date),
    }


class KeyManager:
    """Owns the records and unwrapped handles of one vHSM group's keys."""

    def __init__(self, keystore: keystore_api.Keystore, domain_key: bytes,
                 group_id: str, *, cache_ttl: float = 2.0,
                 cache_size: int = 4096):
        self._keystore = keystore
        self._domain_key = domain_key
        self._group_id = group_id
        self._records = keycache.RecordCache(cache_ttl)
        self._handles = keycache.HandleCache(cache_size)

    # -- lookups ----------------------------------------------------------

    def record(self, project: str, key_id: str, *,
               fresh: bool = False) -> keystore_api.KeyRecord:
        """Return the key record if ``project`` owns the key.

        Another project's key answers exactly like a missing one, so key
        ids leak nothing across tenants.
        """
        if not isinstance(key_id, str) or not _is_uuid(key_id):
            raise exception.KeyNotFound(key_id=str(key_id)[:64])
        rec = None if fresh else self._records.get(key_id)
        if rec is None:
            rec = self._keystore.get_key(self._group_id, key_id)
            self._records.put(key_id, rec)
        if rec.project_id != project:
            raise exception.KeyNotFound(key_id=key_id)
        return rec

    def usable(self, project: str, key_id: str, purpose: str,
               operation: str) -> keystore_api.KeyRecord:
        """Return the record of an enabled key of the right purpose."""
        rec = self.record(project, key_id)
        if not states.KEY_MACHINE.allows(rec.state, states.USE):
            # A cached record may predate an enable made through another
            # member; re-read before refusing, so that loosening changes
            # apply everywhere at once (tightening ones within the TTL).
            rec = self.record(project, key_id, fresh=True)
            if not states.KEY_MACHINE.allows(rec.state, states.USE):
                raise exception.InvalidKeyState(
                    key_id=key_id, state=rec.state, action=operation)
        if rec.purpose != purpose:
            raise exception.IncompatibleKeyUsage(
                key_id=key_id, algorithm=rec.algorithm, purpose=rec.purpose,
                operation=operation)
        return rec

    def handle(self, rec: keystore_api.KeyRecord, version: int):
        """Return the unwrapped handle of one version of a key."""
        handle = self._handles.get(rec.key_id, version)
        if handle is None:
            if version > rec.latest_version:
                # Another member may have rotated the key since this one
                # cached the record: a newer version is worth one re-read.
                rec = self._keystore.get_key(self._group_id, rec.key_id)
                self._records.put(rec.key_id, rec)
            if version < 1 or version > rec.latest_version:
                raise exception.KeyVersionNotFound(key_id=rec.key_id,
                                                   version=version)
            ver = self._keystore.get_version(rec.key_id, version)
            material = wrapping.unwrap_key(
                self._domain_key, ver.wrapped,
                wrapping.key_aad(rec.key_id, version, rec.project_id,
                                 rec.algorithm))
            handle = keyspec.get_spec(rec.algorithm).load(material)
            self._handles.put(rec.key_id, version, handle)
        return handle

    def decryption_handle(self, rec: keystore_api.KeyRecord, version: int):
        """Handle of a version allowed for decryption and verification."""
        if version < rec.min_decryption_version:
            rec = self._keystore.get_key(self._group_id, rec.key_id)
            self._records.put(rec.key_id, rec)
        if version < rec.min_decryption_version:
            raise exception.KeyVersionTooOld(
                key_id=rec.key_id, version=version,
                minimum=rec.min_decryption_version)
        return self.handle(rec, version)

    # -- lifecycle --------------------------------------------------------

    def _new_version(self, key_id: str, version: int, project: str,
                     spec: keyspec.KeySpec, now):
        material = spec.generate()
        handle = spec.load(material)
        wrapped = wrapping.wrap_key(
            self._domain_key, material,
            wrapping.key_aad(key_id, version, project, spec.name))
        ver = keystore_api.KeyVersionRecord(
            key_id=key_id, version=version, wrapped=wrapped,
            public_key=handle.public_key_pem(), created_at=now)
        return ver, handle

    def create(self, project: str, key_id: str, algorithm: str,
               purpose: str | None, name: str | None,
               description: str | None, exportable: bool) -> dict:
        """Generate a key; repeating a create with the same id is a no-op."""
        if not _is_uuid(key_id):
            raise exception.InvalidInput(reason='key_id must be a UUID')
        spec = keyspec.get_spec(algorithm)
        purpose = purpose or spec.default_purpose
        if purpose not in spec.purposes:
            raise exception.InvalidInput(
                reason='%s keys can be used for %s, not %s'
                       % (algorithm, ', '.join(spec.purposes), purpose))
        now = _utcnow()
        ver, handle = self._new_version(key_id, 1, project, spec, now)
        rec = keystore_api.KeyRecord(
            key_id=key_id, group_id=self._group_id, project_id=project,
            name=name, description=description, algorithm=spec.name,
            purpose=purpose, state=states.ENABLED, exportable=exportable,
            latest_version=1, min_decryption_version=1, created_at=now,
            updated_at=now, deletion_date=None)
        try:
            rec = self._keystore.create_key(rec, ver)
        except keystore_api.DuplicateKeyId:
            existing = self._keystore.get_key(self._group_id, key_id)
            if (existing.project_id != project
                    or existing.algorithm != spec.name
                    or existing.purpose != purpose):
                raise exception.Conflict(
                    reason='key id %s is already in use' % key_id) from None
            return key_to_dict(existing)
        self._records.put(key_id, rec)
        self._handles.put(key_id, 1, handle)
        LOG.info('Created key %s (%s, %s) for project %s.', key_id,
                 spec.name, purpose, project)
        return key_to_dict(rec)

    def list_keys(self, project: str, limit: int, marker: str | None,
             state: str | None) -> list[dict]:
        records = self._keystore.list_keys(self._group_id, project,
                                           limit=limit, marker=marker,
                                           state=state)
        return [key_to_dict(r) for r in records]

    def get(self, project: str, key_id: str) -> dict:
        return key_to_dict(self.record(project, key_id, fresh=True))

    def rotate(self, project: str, key_id: str) -> dict:
        """Add a new version; encryption and signing use it from now on."""
        rec = self.record(project, key_id, fresh=True)
        states.KEY_MACHINE.next_state(rec.state, states.ROTATE,
                                      resource_id=key_id)
        spec = keyspec.get_spec(rec.algorithm)
        version = rec.latest_version + 1
        ver, handle = self._new_version(key_id, version, project, spec,
                                        _utcnow())
        rec = self._keystore.add_version(self._group_id, key_id, ver)
        self._records.put(key_id, rec)
        self._handles.put(key_id, version, handle)
        LOG.info('Rotated key %s to version %d.', key_id, version)
        return key_to_dict(rec)

    def _transition(self, project: str, key_id: str, event: str,
                    extra: dict | None = None) -> dict:
        rec = self.record(project, key_id, fresh=True)
        target = states.KEY_MACHINE.next_state(rec.state, event,
                                               resource_id=key_id)
        values = {'state': target}
        values.update(extra or {})
        rec = self._keystore.update_key(
            self._group_id, key_id, values,
            expect_states=states.KEY_MACHINE.sources(event), action=event)
        self._records.put(key_id, rec)
        LOG.info('Key %s: %s -> %s.', key_id, event, target)
        return key_to_dict(rec)

    def enable(self, project: str, key_id: str) -> dict:
        return self._transition(project, key_id, states.ENABLE)

    def disable(self, project: str, key_id: str) -> dict:
        return self._transition(project, key_id, states.DISABLE)

    def schedule_deletion(self, project: str, key_id: str,
                          pending_days: int) -> dict:
        """Make the key unusable now and destroy it after the wait."""
        deletion = _utcnow() + datetime.timedelta(days=pending_days)
        return self._transition(project, key_id, states.SCHEDULE_DELETION,
                                {'deletion_date': deletion})

    def cancel_deletion(self, project: str, key_id: str) -> dict:
        return self._transition(project, key_id, states.CANCEL_DELETION,
                                {'deletion_date': None})

    def configure(self, project: str, key_id: str, *,
                  description: str | None = None,
                  min_decryption_version: int | None = None,
                  exportable: bool | None = None) -> dict:
        """Change description, minimum decryption version or exportable."""
        rec = self.record(project, key_id, fresh=True)
        states.KEY_MACHINE.next_state(rec.state, states.CONFIGURE,
                                      resource_id=key_id)
        values = {}
        if description is not None:
            values['description'] = description
        if min_decryption_version is not None:
            if not 1 <= min_decryption_version <= rec.latest_version:
                raise exception.InvalidInput(
                    reason='min_decryption_version must be between 1 and '
                           'the latest version (%d)' % rec.latest_version)
            values['min_decryption_version'] = min_decryption_version
        if exportable is not None:
            # One way: a key that was ever exportable may have left the
            # vHSM, so it can never be marked non-exportable again.
            if not exportable and rec.exportable:
                raise exception.InvalidInput(
                    reason='exportable cannot be turned off once set')
            values['exportable'] = bool(exportable) or rec.exportable
        if not values:
            return key_to_dict(rec)
        rec = self._keystore.update_key(
            self._group_id, key_id, values,
            expect_states=states.KEY_MACHINE.sources(states.CONFIGURE),
            action=states.CONFIGURE)
        self._records.put(key_id, rec)
        return key_to_dict(rec)

    def public_key(self, project: str, key_id: str,
                   version: int | None) -> dict:
        rec = self.record(project, key_id)
        if not keyspec.get_spec(rec.algorithm).asymmetric:
            raise exception.InvalidInput(
                reason='%s keys have no public key' % rec.algorithm)
        version = version or rec.latest_version
        pem = self.handle(rec, version).public_key_pem()
        return {'key_id': key_id, 'version': version,
                'algorithm': rec.algorithm, 'public_key_pem': pem}

    def export(self, project: str, key_id: str, version: int | None) -> dict:
        """Key material of an exportable key (the only way out of a vHSM)."""
        rec = self.record(project, key_id, fresh=True)
        if not rec.exportable:
            raise exception.NotExportable(key_id=key_id)
        if not states.KEY_MACHINE.allows(rec.state, states.USE):
            raise exception.InvalidKeyState(key_id=key_id, state=rec.state,
                                            action='export')
        version = version or rec.latest_version
        handle = self.handle(rec, version)
        LOG.info('Exported version %d of key %s.', version, key_id)
        return {'key_id': key_id, 'version': version,
                'algorithm': rec.algorithm, 'material': handle.material(),
                'public_key_pem': handle.public_key_pem()}

    def purge_due(self) -> list[str]:
        """Destroy keys whose scheduled deletion date has passed."""
        purged = self._keystore.purge_due(self._group_id, _utcnow())
        for key_id in purged:
            self._records.drop(key_id)
            self._handles.drop_key(key_id)
            LOG.info('Destroyed key %s: its deletion date passed.', key_id)
        return purged


def _is_uuid(value) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False

