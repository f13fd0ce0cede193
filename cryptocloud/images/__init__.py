"""The vHSM and crypto-service images: building, pushing, finding them.

``build`` makes both images from ``images/<kind>/Dockerfile`` and the
project's own wheels and pushes them; ``registry`` talks to the image
registry (Distribution API v2) to check it and to read manifest digests,
by which compute nodes pull.
"""

VHSM = 'vhsm'
CRYPTOSERVICE = 'cryptoservice'
KINDS = (VHSM, CRYPTOSERVICE)
