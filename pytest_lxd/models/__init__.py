"""The LXD object models, one module per resource family."""

from .backup import (
    InstanceBackup,
    InstanceBackupManager,
    StorageVolumeBackup,
    StorageVolumeBackupManager,
)
from .base import AttributeDict, Manager, Model
from .certificate import Certificate, CertificateManager
from .cluster import (
    Cluster,
    ClusterCertificateManager,
    ClusterManager,
    ClusterMember,
    ClusterMemberManager,
)
from .image import Image, ImageAlias, ImageAliasManager, ImageManager
from .instance import (
    Container,
    ContainerManager,
    FileStat,
    Instance,
    InstanceFiles,
    InstanceLogManager,
    InstanceManager,
    InstanceState,
    VirtualMachine,
    VirtualMachineManager,
)
from .network import Network, NetworkForward, NetworkForwardManager, NetworkManager, NetworkState
from .network_acl import NetworkACL, NetworkACLManager
from .network_zone import (
    NetworkZone,
    NetworkZoneManager,
    NetworkZoneRecord,
    NetworkZoneRecordManager,
)
from .operation import Operation, OperationManager
from .profile import Profile, ProfileManager
from .project import Project, ProjectManager
from .snapshot import Snapshot, SnapshotManager
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
    "Container",
    "ContainerManager",
    "FileStat",
    "Image",
    "ImageAlias",
    "ImageAliasManager",
    "ImageManager",
    "Instance",
    "InstanceBackup",
    "InstanceBackupManager",
    "InstanceFiles",
    "InstanceLogManager",
    "InstanceManager",
    "InstanceState",
    "Manager",
    "Model",
    "Network",
    "NetworkACL",
    "NetworkACLManager",
    "NetworkForward",
    "NetworkForwardManager",
    "NetworkManager",
    "NetworkState",
    "NetworkZone",
    "NetworkZoneManager",
    "NetworkZoneRecord",
    "NetworkZoneRecordManager",
    "Operation",
    "OperationManager",
    "Profile",
    "ProfileManager",
    "Project",
    "ProjectManager",
    "Snapshot",
    "SnapshotManager",
    "StoragePool",
    "StoragePoolManager",
    "StorageResources",
    "StorageResourcesManager",
    "StorageVolumeBackup",
    "StorageVolumeBackupManager",
    "StorageVolume",
    "StorageVolumeManager",
    "StorageVolumeSnapshot",
    "StorageVolumeSnapshotManager",
    "VirtualMachine",
    "VirtualMachineManager",
    "Warning",
    "WarningManager",
]
