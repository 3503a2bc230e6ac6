{
  description = "futhark-lab: compile Futhark from notebooks and benchmark it honestly against PyTorch and NumPy";

  # nixpkgs is pinned by flake.lock; `nix flake update` moves the pin.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f (import nixpkgs {
        inherit system;
        config.allowUnfree = true;          # the CUDA toolkit
        config.cudaSupport = false;         # torch: CPU build from the binary cache; CUDA comes from the host
      }));
    in {
      devShells = forAll (pkgs:
        let
          python = pkgs.python3.withPackages (ps: with ps; [
            numpy pandas scipy matplotlib cffi jinja2 tqdm psutil
            jupyterlab ipykernel ipywidgets nbclient nbformat nbconvert
            pyopencl pycuda torch jax jaxlib numba
            pytest pytest-timeout hypothesis
          ]);
          # An ICD directory that lists PoCL (CPU); the shell hook adds the host's NVIDIA ICD when a driver exists.
          pocl-icd = pkgs.runCommand "pocl-icd" { } ''
            mkdir -p $out/etc/OpenCL/vendors
            echo ${pkgs.pocl}/lib/libpocl.so > $out/etc/OpenCL/vendors/pocl.icd
          '';
        in {
          default = pkgs.mkShell {
            packages = [
              pkgs.futhark
              python
              pkgs.gcc
              pkgs.ocl-icd
              pkgs.opencl-headers
              pkgs.pocl
              pkgs.clinfo
              pkgs.cudaPackages.cuda_nvcc
              pkgs.cudaPackages.cuda_cudart
              pkgs.cudaPackages.cuda_nvrtc
            ];
            shellHook = ''
              # OpenCL: a private vendors directory (PoCL), plus NVIDIA's ICD when the host driver has one.
              export OCL_ICD_VENDORS="$PWD/.nix-icd"
              mkdir -p "$OCL_ICD_VENDORS"
              cp -f ${pocl-icd}/etc/OpenCL/vendors/pocl.icd "$OCL_ICD_VENDORS/"
              # Host driver libraries first on the library path: NixOS keeps them in /run/opengl-driver/lib,
              # other distributions wherever ldconfig knows libcuda.so.1 from.
              host_driver=""
              if [ -e /run/opengl-driver/lib/libcuda.so.1 ]; then
                host_driver=/run/opengl-driver/lib
              elif command -v ldconfig >/dev/null 2>&1; then
                libcuda=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / {print $NF; exit}')
                [ -n "$libcuda" ] && host_driver=$(dirname "$(readlink -f "$libcuda")")
              fi
              if [ -n "$host_driver" ]; then
                export LD_LIBRARY_PATH="$host_driver''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
                if [ -e "$host_driver/libnvidia-opencl.so.1" ]; then
                  echo "$host_driver/libnvidia-opencl.so.1" > "$OCL_ICD_VENDORS/nvidia.icd"
                fi
              fi
              # CUDA headers and NVRTC for the cuda backend's generated C (compiled by futhark-lab at run time).
              export CUDA_HOME=${pkgs.cudaPackages.cuda_cudart.dev or pkgs.cudaPackages.cuda_cudart}
              export CPATH="${pkgs.cudaPackages.cuda_nvrtc.dev or pkgs.cudaPackages.cuda_nvrtc}/include:${pkgs.opencl-headers}/include''${CPATH:+:$CPATH}"
              export LIBRARY_PATH="${pkgs.cudaPackages.cuda_nvrtc.lib or pkgs.cudaPackages.cuda_nvrtc}/lib:${pkgs.ocl-icd}/lib''${LIBRARY_PATH:+:$LIBRARY_PATH}"
              export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
              echo "futhark-lab dev shell: $(futhark --version | head -1); run 'python -m futhark_lab.cli doctor'"
            '';
          };
        });
    };
}
