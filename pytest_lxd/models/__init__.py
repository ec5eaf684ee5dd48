"""The LXD object models, one module per resource family."""

from .base import AttributeDict, Manager, Model
from .certificate import Certificate, CertificateManager
from .cluster import (
    Cluster,
    ClusterCertificateManager,
    ClusterManager,
    ClusterMember,
    ClusterMemberManager,
)
from .network import Network, NetworkForward, NetworkForwardManager, NetworkManager, NetworkState
from .operation import Operation, OperationManager
from .profile import Profile, ProfileManager
from .project import Project, ProjectManager
from .storage import (
    StoragePool,
    StoragePoolManager,
    StorageResources,
    StorageResourcesManager,
    StorageVolume,
    StorageVolumeManager,
    StorageVolumeSnapshot,
    StorageVolumeSnapshotManager,
)
from .warning import Warning, WarningManager

__all__ = [
    "AttributeDict",
    "Certificate",
    "CertificateManager",
    "Cluster",
    "ClusterCertificateManager",
    "ClusterManager",
    "ClusterMember",
    "ClusterMemberManager",
    "Manager",
    "Model",
    "Network",
    "NetworkForward",
    "NetworkForwardManager",
    "NetworkManager",
    "NetworkState",
    "Operation",
    "OperationManager",
    "Profile",
    "ProfileManager",
    "Project",
    "ProjectManager",
    "StoragePool",
    "StoragePoolManager",
    "StorageResources",
    "StorageResourcesManager",
    "StorageVolume",
    "StorageVolumeManager",
    "StorageVolumeSnapshot",
    "StorageVolumeSnapshotManager",
    "Warning",
    "WarningManager",
]
