"""sgmine.sites: one spglib cell for the training labels and the diffpy plugin's library."""

import numpy as np
import pytest

# A disordered fcc alloy: Fe and Ni share the 4a site (Fm-3m, 225) half and half.
DISORDERED_CIF = """data_FeNi
_cell_length_a 3.56
_cell_length_b 3.56
_cell_length_c 3.56
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
_atom_site_U_iso_or_equiv
Fe1 Fe 0 0 0 0.5 0.006
Ni1 Ni 0 0 0 0.5 0.006
"""


# Fe on the two sites of a CsCl cell, with occupancies that agree to three decimals: bcc (229) by
# the shared rule; the plugin's old four-decimal species made it CsCl-type (221).
NEAR_OCCUPANCIES_CIF = """data_Fe
_cell_length_a 2.87
_cell_length_b 2.87
_cell_length_c 2.87
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
_symmetry_Int_Tables_number 1
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Fe1 Fe 0 0 0 0.3333
Fe2 Fe 0.5 0.5 0.5 0.3334
"""


@pytest.fixture
def disordered(tmp_path):
    pytest.importorskip("diffpy.structure")
    path = tmp_path / "FeNi.cif"
    path.write_text(DISORDERED_CIF)
    return path


def test_disordered_atoms_on_one_position_are_one_site(disordered):
    from diffpy.structure import loadStructure

    from sgmine.sites import merged_sites

    structure = loadStructure(str(disordered))
    assert len(structure) == 8  # 4 positions x 2 species
    lattice, xyz, types, members = merged_sites(structure)
    assert len(xyz) == 4 and set(types.tolist()) == {1} and all(len(m) == 2 for m in members)
    np.testing.assert_allclose(lattice, 3.56 * np.eye(3), atol=1e-12)


def test_same_disordered_cif_gets_the_same_space_group_in_training_and_refine(disordered):
    pytest.importorskip("spglib")
    library = pytest.importorskip("sgmine_diffpy.library")
    from diffpy.structure import loadStructure

    from training.structures import space_group_of

    assert space_group_of(loadStructure(str(disordered))) == 225
    entry = library.read_structure(disordered)
    assert entry.space_group == 225
    # the standard cell keeps both species on each position, with their occupancies
    atoms = entry.structure
    assert sorted((a.element, round(float(a.occupancy), 3)) for a in atoms)[:2] == [("Fe", 0.5), ("Fe", 0.5)]
    assert len(atoms) == 8 and len(entry.sites) == 8 and set(entry.sites) == {0}


def test_occupancies_are_compared_the_same_way_in_training_and_refine(tmp_path):
    pytest.importorskip("spglib")
    library = pytest.importorskip("sgmine_diffpy.library")
    from diffpy.structure import loadStructure

    from training.structures import space_group_of

    path = tmp_path / "Fe.cif"
    path.write_text(NEAR_OCCUPANCIES_CIF)
    assert space_group_of(loadStructure(str(path))) == library.read_structure(path).space_group == 229
