"""`edgex convert`: build each artifact, check it in its real runtime (parity gate, accuracy budget), publish it.

Not named `convert`: a subpackage `edgex.convert` would shadow the public function `edgex.convert` once imported.
"""
