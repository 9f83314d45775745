# -*- test-case-name: tests.test_im_pep_service -*-
"""
Personal eventing (XEP-0163) over publish-subscribe (XEP-0060): a
pubsub service on every account's bare JID.

  - L{xmppcert.im.pep.nodeconfig}: node configuration, its defaults and
    validation (configure forms, publish-options);
  - L{xmppcert.im.pep.service}: L{PEPService}, the backend with a
    programmatic API, access control, notifications and the hooks in
    local delivery;
  - L{xmppcert.im.pep.protocol}: the requests on the wire and service
    discovery (L{PEPHandler}, one per bound stream).
"""

from xmppcert.im.pep.nodeconfig import FIELDS, NodeConfig
from xmppcert.im.pep.protocol import FEATURES, PEPHandler, PEPRequest
from xmppcert.im.pep.service import PEP_PRIORITY, ICapabilities, PEPService, accessDenial

__all__ = [
    "FEATURES",
    "FIELDS",
    "PEP_PRIORITY",
    "ICapabilities",
    "NodeConfig",
    "PEPHandler",
    "PEPRequest",
    "PEPService",
    "accessDenial",
]
