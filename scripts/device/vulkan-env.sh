# Sourced by webgpu-suite.sh and webgpu-e2e.sh on the GPU machine, with $dir the pack folder (webgpu-pack.sh):
# unpacks the Vulkan loader (libvulkan1 and the GL dispatch libraries) from the carried .deb files into /, as the
# device README describes, and points the loader at NVIDIA's installed ICD and EGL vendor files. Sets $icd.
for f in "$dir"/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=$(ls /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json 2>/dev/null | head -1)
[ -n "$icd" ] && export VK_DRIVER_FILES=$icd
egl=$(ls /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json 2>/dev/null | head -1)
[ -n "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
export XDG_RUNTIME_DIR=/tmp
