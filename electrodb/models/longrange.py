"""Long-range electrostatics added to a local NNP: a periodic Coulomb term summed with torch-pme.

A local NNP (cutoff ~5 Å) cannot represent the 1/r tail of ion–ion electrostatics. Following the LiCl NequIP
recipe (Zhang, Pagotto, Gould & Duignan, arXiv:2310.12535) the model is trained with a Coulomb term removed
and the same term is added back in MD:

.. math::

    E_\\mathrm{LR} = \\frac{k_e}{\\varepsilon_r} \\sum_{i<j}{}^{'} \\sum_{\\mathbf n}
        \\frac{q_i q_j\\, s(r_{ij,\\mathbf n})}{r_{ij,\\mathbf n}}, \\qquad
    k_e = \\frac{e^2}{4\\pi\\varepsilon_0} = 14.399645\\ \\mathrm{eV\\,Å},

the sum running over all periodic images :math:`\\mathbf n` (the prime drops :math:`i=j` at
:math:`\\mathbf n=0`), evaluated by Ewald or particle-mesh Ewald (torch-pme; real-space cutoff
``cutoff_A``). A non-neutral cell gets the usual uniform neutralising background. ``s(r)`` is 1 (no damping) or
``erf(r / damping_A)`` — the interaction of two Gaussian charge clouds of width ``damping_A / 2``, which
switches the term off inside the NNP's own range (``erf(2) = 0.995``: at ``r = 2 damping_A`` the pair is 99.5 %
undamped). The damped sum is computed as the full Ewald sum minus the short-range remainder
:math:`\\sum_{r<r_c} q_i q_j\\,\\mathrm{erfc}(r/a)/r`, which is exact when ``erfc(cutoff_A / damping_A)`` is
negligible (``damping_A <= cutoff_A / 4`` is enforced: erfc(4) = 1.5e-8).

Charges per atom (:func:`atomic_charges`), from ElectroDB's box labels ``atoms.arrays["role"]``
(0 water_O, 1 water_H, 2 cation, 3 anion) and ``atoms.arrays["ion_center"]``:

- ``"ions"``: the formal ion charge on each ion's centre atom, every other atom 0 (the published recipe).
  Polyatomic ions (NO₃⁻, SO₄²⁻, TFSI⁻ …) carry their whole charge on the centre atom (N, S, N …), not spread
  over their atoms: the term is meant for distances beyond the NNP cutoff where only the ion's monopole
  matters; a point charge at the centre gives that monopole exactly, creates no intra-ion pairs (no huge,
  geometry-dependent intramolecular Coulomb energy for the NNP to unlearn) and no invented partial charges
  (a uniform spread, e.g. −0.4 e on the S of SO₄²⁻, is chemically wrong and gives a wrong dipole anyway).
- ``"all"``: ions as above plus water charges ``water_charges`` (default SPC/E O −0.8476 e, H +0.4238 e).
- a dict: explicit charges keyed by role name (``water_O``, ``water_H``, ``cation``, ``anion``) or element
  symbol (role name wins); every atom must match a key.

With ``exclude_intramolecular`` (default) pairs inside one molecule (same ``atoms.arrays["mol_id"]``, nearest
image) are removed, as in classical water models; in ``"ions"`` mode there are none.

Public API (settings: :class:`electrodb.systems.long_range.LongRangeSettings`): :func:`atomic_charges`,
:func:`resolve_parameters`, :func:`long_range_energy_forces` (for delta learning) and the ASE calculators
:class:`CoulombCalculator` (the term alone) and :class:`LongRangeCalculator` (base NNP + term). Units: Å, eV, e; stress
eV/Å³ in ASE's Voigt order (xx, yy, zz, yz, xz, xy), sign convention of ASE (positive = tensile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import primitive_neighbor_list
from scipy.special import erfcinv

from electrodb.systems.chemistry import Salt, parse_salt
from electrodb.systems.long_range import LongRangeSettings

# torch, torch-pme and vesin are imported inside the functions that evaluate the term: they are heavy (vesin is
# also optional, with ASE's neighbour list as the fallback).

__all__ = [
    "CoulombCalculator",
    "EwaldParameters",
    "LongRangeCalculator",
    "atomic_charges",
    "long_range_energy_forces",
    "resolve_parameters",
]

ROLE_NAMES = ("water_O", "water_H", "cation", "anion")  # codes 0..3 of atoms.arrays["role"] (electrodb.systems.boxes)


# ------------------------------------------------------------------------------------------------ charges


def atomic_charges(atoms: Atoms, settings: LongRangeSettings, salt=None) -> np.ndarray:
    """Charge per atom (e) for the long-range term, from the box labels.

    Parameters
    ----------
    atoms
        A box from :func:`electrodb.systems.boxes.pack_box` (or any Atoms with ``arrays["role"]``; ``ion_center`` is
        needed when an ion has more than one atom). A dict of charges keyed only by element symbols needs no
        labels.
    settings
        The charge mode (see the module text).
    salt
        Salt formula or :class:`electrodb.systems.chemistry.Salt`; needed for ``"ions"``/``"all"`` (formal charges).

    Returns
    -------
    numpy.ndarray
        ``(n_atoms,)`` float64 charges in e.
    """
    n = len(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    role = atoms.arrays.get("role")
    mode = settings.charges
    if isinstance(mode, dict):
        out = np.full(n, np.nan)
        for k in range(n):
            name = ROLE_NAMES[int(role[k])] if role is not None and 0 <= int(role[k]) < 4 else None
            if name is not None and name in mode:
                out[k] = mode[name]
            elif symbols[k] in mode:
                out[k] = mode[symbols[k]]
        missing = sorted(set(symbols[np.isnan(out)]))
        if missing:
            raise ValueError(f"no charge given for atoms of element(s) {missing}; charges keys are {sorted(mode)}")
        return out
    if role is None:
        raise ValueError(f"charges={mode!r} needs atoms.arrays['role'] (boxes from electrodb.systems.boxes carry it)")
    if salt is None:
        raise ValueError(f"charges={mode!r} needs the salt to look up the formal ion charges")
    salt = salt if isinstance(salt, Salt) else parse_salt(str(salt))
    role = np.asarray(role, dtype=int)
    center = atoms.arrays.get("ion_center")
    out = np.zeros(n)
    for code, ion in ((2, salt.cation), (3, salt.anion)):
        members = role == code
        if center is not None:
            members &= np.asarray(center, dtype=bool)
        elif ion.n_atoms > 1 and members.any():
            raise ValueError(f"{ion.name} has {ion.n_atoms} atoms: atoms.arrays['ion_center'] is needed")
        out[members] = ion.charge
    if mode == "all":
        out[role == 0] = settings.water_charges["O"]
        out[role == 1] = settings.water_charges["H"]
    return out


# ------------------------------------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class EwaldParameters:
    """Resolved summation parameters (Å): Gaussian split width, and the k-space resolution of the method."""

    method: str
    cutoff_A: float
    smearing_A: float
    lr_wavelength_A: float | None = None
    mesh_spacing_A: float | None = None
    interpolation_nodes: int = 6


def resolve_parameters(atoms: Atoms, charges: np.ndarray, settings: LongRangeSettings) -> EwaldParameters:
    """Ewald split and k-space resolution for a relative tolerance ``settings.accuracy`` (explicit values win).

    With the Gaussian split width sigma (real space erfc(r / (sqrt(2) sigma)) / r, k space
    4 pi exp(-sigma^2 k^2 / 2) / k^2) the two truncations are set equal to the tolerance delta, as in
    GROMACS' ``ewald-rtol``:

    .. math::

        \\mathrm{erfc}\\!\\left(\\frac{r_c}{\\sqrt2\\,\\sigma}\\right) = \\delta, \\qquad
        e^{-\\sigma^2 k_\\max^2 / 2} = \\delta .

    torch-pme 0.5's Ewald keeps k-vectors up to 2 pi / (2 lr_wavelength) (its grid holds ceil(L / lr_wavelength)
    points from -1/2 to 1/2 of that range per axis), so ``lr_wavelength = pi / k_max``; PME uses
    ``mesh_spacing = pi / k_max`` (mesh Nyquist wavenumber ~2 k_max) with 6-point interpolation. On a 196-atom
    NaCl–SPC/E box at delta = 1e-5 these give energies within 0.05 meV of pymatgen's EwaldSummation (593 eV
    total) and RMS force errors ~3e-5 eV/Å (tests/models/test_longrange.py). torch-pme's own tuners are not used:
    they bound the RMS force only, time trial runs (not deterministic), and RMS-force targets of 1e-4–1e-5 eV/Å
    left Ewald energy errors of 0.1–0.4 eV on that box. ``atoms`` and ``charges`` are accepted for future
    box-dependent choices and are not used now.
    """
    rc = settings.cutoff_A
    sigma = settings.smearing_A or rc / (math.sqrt(2.0) * float(erfcinv(settings.accuracy)))
    k_max = math.sqrt(2.0 * math.log(1.0 / settings.accuracy)) / sigma
    if settings.method == "ewald":
        return EwaldParameters("ewald", rc, float(sigma), lr_wavelength_A=settings.lr_wavelength_A or math.pi / k_max)
    return EwaldParameters(
        "pme",
        rc,
        float(sigma),
        mesh_spacing_A=settings.mesh_spacing_A or math.pi / k_max,
        interpolation_nodes=settings.interpolation_nodes,
    )


# ------------------------------------------------------------------------------------------------ evaluation


def _neighbor_pairs(positions: np.ndarray, cell: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Full neighbour list (both i->j and j->i) within ``cutoff``: indices (P, 2) and integer shifts (P, 3)."""
    try:
        from vesin import NeighborList

        i, j, shifts = NeighborList(cutoff=cutoff, full_list=True).compute(positions, cell, True, quantities="ijS")
    except ImportError:  # vesin is optional (it comes with torch-sim); ASE is always there
        i, j, shifts = primitive_neighbor_list("ijS", [True] * 3, cell, positions, cutoff, self_interaction=False)
    return np.stack([i, j], axis=1).astype(np.int64), np.asarray(shifts, dtype=np.int64)


def long_range_energy_forces(
    atoms: Atoms,
    charges: np.ndarray,
    settings: LongRangeSettings,
    parameters: EwaldParameters | None = None,
    compute_stress: bool = True,
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """The long-range Coulomb energy (eV), forces (eV/Å) and stress (eV/Å³, Voigt) of one periodic box.

    Delta learning subtracts exactly these from the reference energies/forces/stresses before training.
    Forces are ``-dE/dR`` and the stress ``(1/V) dE/d(strain)`` (symmetric strain applied to positions and
    cell), both by autograd through torch-pme. Only charged atoms enter the sum; others get zero force.

    Parameters
    ----------
    atoms
        Fully periodic box; ``arrays["mol_id"]`` is used when ``settings.exclude_intramolecular``.
    charges
        ``(n_atoms,)`` charges in e (:func:`atomic_charges`).
    settings
        The term's settings.
    parameters
        Fixed summation parameters (MD keeps them fixed); by default resolved for this box.
    compute_stress
        Return the stress (else ``None``).
    """
    import torch
    import torchpme

    if not all(atoms.pbc):
        raise ValueError("the long-range term needs a box periodic in all three directions")
    q_all = np.asarray(charges, dtype=float)
    if q_all.shape != (len(atoms),):
        raise ValueError(f"charges has shape {q_all.shape}, expected ({len(atoms)},)")
    sel = np.flatnonzero(q_all != 0)
    forces = np.zeros((len(atoms), 3))
    if sel.size == 0:
        return 0.0, forces, (np.zeros(6) if compute_stress else None)
    params = parameters or resolve_parameters(atoms, q_all, settings)
    cell_np = np.asarray(atoms.cell, dtype=float)
    frac = np.linalg.solve(cell_np.T, atoms.positions[sel].T).T
    pos_np = (frac - np.floor(frac)) @ cell_np  # wrapped into the cell (the mesh assumes it)
    pairs, shifts = _neighbor_pairs(pos_np, cell_np, params.cutoff_A)

    f64 = torch.float64
    pos0 = torch.tensor(pos_np, dtype=f64, requires_grad=True)
    cell0 = torch.tensor(cell_np, dtype=f64)
    strain = torch.zeros((3, 3), dtype=f64, requires_grad=compute_stress)
    deform = torch.eye(3, dtype=f64) + 0.5 * (strain + strain.T)
    pos = pos0 @ deform
    cell = cell0 @ deform
    q = torch.tensor(q_all[sel, None], dtype=f64)
    idx = torch.from_numpy(pairs)
    vec = pos[idx[:, 1]] - pos[idx[:, 0]] + torch.from_numpy(shifts).to(f64) @ cell
    dist = torch.linalg.norm(vec, dim=1)

    potential = torchpme.CoulombPotential(smearing=params.smearing_A, prefactor=settings.prefactor)
    if params.method == "ewald":
        calc = torchpme.EwaldCalculator(potential, lr_wavelength=params.lr_wavelength_A, full_neighbor_list=True)
    else:
        calc = torchpme.PMECalculator(
            potential,
            mesh_spacing=params.mesh_spacing_A,
            interpolation_nodes=params.interpolation_nodes,
            full_neighbor_list=True,
        )
    calc = calc.to(dtype=f64)
    phi = calc(charges=q, cell=cell, positions=pos, neighbor_indices=idx, neighbor_distances=dist)
    energy = torch.sum(q * phi)

    # short-range subtractions per pair (full list -> factor 1/2): damping remainder erfc(r/a)/r, and the
    # whole (damped) pair for excluded intramolecular pairs
    qq = q[idx[:, 0], 0] * q[idx[:, 1], 0]
    remove = torch.zeros_like(dist)
    if settings.damping_A is not None:
        remove = torch.erfc(dist / settings.damping_A) / dist
    mol_id = atoms.arrays.get("mol_id")
    if settings.exclude_intramolecular and mol_id is not None:
        mol = np.asarray(mol_id)[sel]
        half_box = 0.5 * float(
            np.min(
                np.abs(np.linalg.det(cell_np))
                / np.linalg.norm(np.cross(cell_np[[1, 2, 0]], cell_np[[2, 0, 1]]), axis=1)
            )
        )
        same = (mol[pairs[:, 0]] == mol[pairs[:, 1]]) & (dist.detach().numpy() < half_box)
        if same.any():
            excl = torch.from_numpy(same)
            remove = torch.where(excl, 1.0 / dist, remove)
    energy = energy - 0.5 * settings.prefactor * torch.sum(qq * remove)

    grads = torch.autograd.grad(energy, [pos0, strain] if compute_stress else [pos0])
    forces[sel] = -grads[0].numpy()
    stress = None
    if compute_stress:
        s = grads[1].numpy() / abs(np.linalg.det(cell_np))
        s = 0.5 * (s + s.T)
        stress = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    return float(energy.detach()), forces, stress


# ------------------------------------------------------------------------------------------------ ASE calculators


class CoulombCalculator(Calculator):
    """ASE calculator of the long-range term alone (energy, forces, stress).

    The summation parameters are resolved on the first call and then kept fixed, so that an MD run samples one
    Hamiltonian (pass ``parameters`` to fix them explicitly).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        settings: LongRangeSettings,
        charges_per_atom: np.ndarray,
        parameters: EwaldParameters | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.charges = np.asarray(charges_per_atom, dtype=float)
        self.parameters = parameters

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if self.parameters is None and np.any(self.charges != 0):
            self.parameters = resolve_parameters(self.atoms, self.charges, self.settings)
        energy, forces, stress = long_range_energy_forces(
            self.atoms, self.charges, self.settings, self.parameters, compute_stress="stress" in properties
        )
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress is not None:
            self.results["stress"] = stress


class LongRangeCalculator(Calculator):
    """A base (NNP) calculator plus the long-range Coulomb term.

    ``results`` holds the sums (``energy``, ``free_energy``, ``forces``, ``stress``) and the parts:
    ``long_range_energy``, ``long_range_forces``, ``long_range_stress`` and ``base_energy``.

    Parameters
    ----------
    base_calc
        Any ASE calculator (MACE, NequIP …); ``None`` gives the term alone.
    settings
        The term's settings.
    charges_per_atom
        ``(n_atoms,)`` charges in e, e.g. ``atomic_charges(atoms, settings, salt)``.
    parameters
        Fixed summation parameters; by default resolved on the first call and kept.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        base_calc: Calculator | None,
        settings: LongRangeSettings,
        charges_per_atom: np.ndarray,
        parameters: EwaldParameters | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.base = base_calc
        self.long_range = CoulombCalculator(settings, charges_per_atom, parameters)

    @classmethod
    def for_system(cls, base_calc: Calculator | None, settings: LongRangeSettings, atoms: Atoms, salt):
        """Build with the charges of a labelled ElectroDB box (``atomic_charges(atoms, settings, salt)``)."""
        return cls(base_calc, settings, atomic_charges(atoms, settings, salt))

    @property
    def settings(self) -> LongRangeSettings:
        return self.long_range.settings

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        wanted = ["energy", "forces"] + (["stress"] if "stress" in properties else [])
        lr = {p: self.long_range.get_property(p, self.atoms) for p in wanted}
        self.results = {f"long_range_{p}": np.copy(v) if p != "energy" else v for p, v in lr.items()}
        base = {p: self.base.get_property(p, self.atoms) for p in wanted} if self.base is not None else {}
        self.results["base_energy"] = float(base.get("energy", 0.0))
        for p in wanted:
            self.results[p] = lr[p] + base[p] if p in base else lr[p]
        self.results["energy"] = float(self.results["energy"])
        self.results["free_energy"] = self.results["energy"]
